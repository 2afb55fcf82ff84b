# Install rules for greenring: the library, its public headers, a CMake package
# (find_package(greenring CONFIG)) and a pkg-config file (greenring.pc).
# Included with include(cmake/install.cmake OPTIONAL) at the end of the root
# CMakeLists.txt, after the greenring target exists.
include_guard(GLOBAL)

# On by default only when greenring is the top-level project, so a parent
# project that add_subdirectory()s greenring does not inherit its install rules.
option(GREENRING_INSTALL "Generate greenring install rules" ${PROJECT_IS_TOP_LEVEL})
if(NOT GREENRING_INSTALL)
  return()
endif()
if(NOT TARGET greenring)
  message(WARNING "cmake/install.cmake: there is no greenring target; no install rules generated")
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GREENRING_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/greenring"
    CACHE STRING "Where greenringConfig.cmake is installed (relative to the prefix)")
set(GREENRING_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
    CACHE STRING "Where greenring.pc is installed (relative to the prefix)")

get_target_property(_greenring_type greenring TYPE)
# A static archive carries its private link dependencies to the consumer:
# liburing and OpenSSL must then be found again by the package config and
# named by the pkg-config file's Requires (Requires.private only reaches
# --static links).
if(_greenring_type STREQUAL "STATIC_LIBRARY")
  set(GREENRING_CONFIG_NEEDS_URING TRUE)
  set(GREENRING_PC_URING_FIELD "Requires")
else()
  set(GREENRING_CONFIG_NEEDS_URING FALSE)
  set(GREENRING_PC_URING_FIELD "Requires.private")
endif()

install(TARGETS greenring greenring_interop
  EXPORT greenringTargets
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT greenring_Runtime
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT greenring_Runtime
          NAMELINK_COMPONENT greenring_Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT greenring_Development)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/runtime/include/greenring"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT greenring_Development)
# greenring::interop: coroutine interop headers go beside the runtime's.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/interop/include/greenring"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT greenring_Development)

install(EXPORT greenringTargets
  NAMESPACE greenring::
  FILE greenringTargets.cmake
  DESTINATION "${GREENRING_INSTALL_CMAKEDIR}"
  COMPONENT greenring_Development)

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/greenringConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/greenringConfig.cmake"
  INSTALL_DESTINATION "${GREENRING_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/greenringConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/greenringConfig.cmake"
  "${PROJECT_BINARY_DIR}/greenringConfigVersion.cmake"
  DESTINATION "${GREENRING_INSTALL_CMAKEDIR}"
  COMPONENT greenring_Development)

# pkg-config: relocatable (prefix derived from ${pcfiledir}) when the install
# dirs are relative, so `cmake --install --prefix X` and DESTDIR both work.
if(IS_ABSOLUTE "${GREENRING_INSTALL_PKGCONFIGDIR}"
   OR IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(GREENRING_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(GREENRING_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(GREENRING_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH _greenring_up "/p/${GREENRING_INSTALL_PKGCONFIGDIR}" "/p")
  string(REGEX REPLACE "/+$" "" _greenring_up "${_greenring_up}")
  set(GREENRING_PC_PREFIX "\${pcfiledir}/${_greenring_up}")
  set(GREENRING_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(GREENRING_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/greenring.pc.in" "${PROJECT_BINARY_DIR}/greenring.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/greenring.pc"
  DESTINATION "${GREENRING_INSTALL_PKGCONFIGDIR}"
  COMPONENT greenring_Development)

unset(_greenring_type)
unset(_greenring_up)
