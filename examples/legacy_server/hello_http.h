/* hello_http.h: the HTTP/1.1 "hello" protocol shared by legacy_server (the
 * thread-per-connection example) and bench/macro/uring_http_server (the
 * hand-written io_uring ceiling), so both send byte-identical responses and
 * frame requests the same way; a benchmark comparing them then compares
 * servers, not protocols.
 *
 * Plain C11 and libc only: legacy_server must stay an ordinary program that
 * knows nothing of greenring. Header-only (static functions) so neither program
 * needs a library.
 *
 * Framing: a request is a header block ending in CRLFCRLF, followed by
 * Content-Length bytes of body (ignored). A request that does not fit in the
 * caller's buffer (HELLO_MAX_REQUEST) is refused with 400 and the connection
 * closed; chunked request bodies are not supported (400 as well). Keep-alive is
 * HTTP/1.1's default; "Connection: close", or HTTP/1.0 without
 * "Connection: keep-alive", makes the response carry "Connection: close" and
 * the server close after sending it. */
#ifndef GREENRING_EXAMPLES_HELLO_HTTP_H
#define GREENRING_EXAMPLES_HELLO_HTTP_H

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* Per-connection input buffer size; a request larger than this is refused. */
#define HELLO_MAX_REQUEST 8192

static const char hello_response_keepalive[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: legacy_server\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 6\r\n"
    "\r\n"
    "hello\n";

static const char hello_response_close[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: legacy_server\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 6\r\n"
    "Connection: close\r\n"
    "\r\n"
    "hello\n";

static const char hello_response_bad[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Server: legacy_server\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";

enum hello_parse {
  HELLO_INCOMPLETE = 0, /* need more bytes */
  HELLO_REQUEST = 1,    /* one whole request: *consumed bytes, *close_after */
  HELLO_BAD = -1,       /* malformed or too large: send hello_response_bad, close */
};

/* Case-insensitive "does the header value [v, end) contain token tok". */
static int hello_value_has(const char* v, const char* end, const char* tok) {
  size_t n = strlen(tok);
  for (; v + n <= end; ++v)
    if (strncasecmp(v, tok, n) == 0) return 1;
  return 0;
}

/* Parses the first request in buf[0, len). */
static enum hello_parse hello_parse_request(const char* buf, size_t len, size_t* consumed, int* close_after) {
  const char* end = NULL;
  for (size_t i = 3; i < len; ++i) {
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
      end = buf + i + 1;
      break;
    }
  }
  if (end == NULL) return len >= HELLO_MAX_REQUEST ? HELLO_BAD : HELLO_INCOMPLETE;

  /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
  const char* eol = memchr(buf, '\r', (size_t)(end - buf));
  if (eol == NULL || eol - buf < 14) return HELLO_BAD;
  int http10 = strncmp(eol - 8, "HTTP/1.0", 8) == 0;
  if (!http10 && strncmp(eol - 8, "HTTP/1.1", 8) != 0) return HELLO_BAD;

  int keep = !http10, closing = 0;
  size_t body = 0;
  for (const char* h = eol + 2; h < end - 2;) {
    const char* he = memchr(h, '\r', (size_t)(end - h));
    const char* colon = memchr(h, ':', (size_t)(he - h));
    if (colon != NULL) {
      size_t nlen = (size_t)(colon - h);
      const char* v = colon + 1;
      if (nlen == 10 && strncasecmp(h, "Connection", 10) == 0) {
        if (hello_value_has(v, he, "close")) closing = 1;
        if (hello_value_has(v, he, "keep-alive")) keep = 1;
      } else if (nlen == 14 && strncasecmp(h, "Content-Length", 14) == 0) {
        while (v < he && *v == ' ') ++v;
        if (v == he) return HELLO_BAD;
        for (; v < he && *v != ' '; ++v) {
          if (*v < '0' || *v > '9' || body > HELLO_MAX_REQUEST) return HELLO_BAD;
          body = body * 10 + (size_t)(*v - '0');
        }
      } else if (nlen == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0) {
        return HELLO_BAD;
      }
    }
    h = he + 2;
  }
  size_t total = (size_t)(end - buf) + body;
  if (total > HELLO_MAX_REQUEST) return HELLO_BAD;
  if (total > len) return HELLO_INCOMPLETE;
  *consumed = total;
  *close_after = closing || !keep;
  return HELLO_REQUEST;
}

#endif
