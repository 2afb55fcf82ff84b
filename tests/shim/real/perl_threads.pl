# perl_threads.pl: Perl ithreads + IO::Socket::INET + Thread::Queue, an
# ordinary program with deterministic stdout. 4 worker threads take accept
# tokens from a Thread::Queue and serve one connection per token; 16 client threads send 25
# lines each and check the reversed echo; a shared counter under lock();
# select() with a timeout on an idle socket returns 0.
use strict;
use warnings;
use threads;
use threads::shared;
use Thread::Queue;
use IO::Socket::INET;
use IO::Select;

my $CLIENTS = 16;
my $LINES   = 25;
my $listener = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 64, ReuseAddr => 1)
  or die "listen: $!";
my $port = $listener->sockport;
my $q = Thread::Queue->new;
my $served :shared = 0;

# One token per expected connection: a worker that takes a token accepts and
# serves exactly one client, so no fds cross threads.
$q->enqueue($_) for 1 .. $CLIENTS;
$q->enqueue(undef) for 1 .. 4;

my @workers = map {
  threads->create(sub {
    while (defined(my $token = $q->dequeue)) {
      my $s = $listener->accept or die "accept: $!";
      $s->autoflush(1);
      while (my $line = <$s>) {
        chomp $line;
        print $s scalar(reverse $line), "\n";
      }
      close $s;
      { lock($served); $served++; }
    }
  });
} 1 .. 4;

my @clients = map {
  my $id = $_;
  threads->create(sub {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die "connect: $!";
    my $ok = 0;
    for my $i (1 .. $LINES) {
      my $msg = "client $id line $i " . ('z' x ($id * 13 % 200));
      print $s "$msg\n";
      my $back = <$s>;
      chomp $back if defined $back;
      $ok++ if defined $back && $back eq reverse $msg;
    }
    shutdown($s, 1);
    close $s;
    return $ok;
  });
} 1 .. $CLIENTS;

my $verified = 0;
$verified += $_->join for @clients;
$_->join for @workers;
print "perl: connections served $served, lines verified $verified of ", $CLIENTS * $LINES, "\n";

my $idle = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die;
my $sel = IO::Select->new($idle);
my @ready = $sel->can_read(0.2);
print "select timeout on an idle socket: ", scalar(@ready), " ready\n";
exit($verified == $CLIENTS * $LINES ? 0 : 1);
