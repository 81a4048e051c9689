"""py-twisted: callbacks. A Twisted Protocol and Factory on the epoll reactor.

The reactor (one thread, epoll) owns the sockets and calls us back: connectionMade when a
client arrives, dataReceived with whatever one recv returned (16 KiB at most: the transport's
bufferSize), connectionLost when it is gone. There is no loop of our own to read top to
bottom: the state of a connection lives in its Protocol object between callbacks, and "what
next" is decided at the end of each one. The Protocol owns its cmbench_http.Session and the
response pieces the transport has not taken yet; it is also the transport's streaming producer,
so a 16 MiB response is handed over 64 KiB at a time as the socket drains (pauseProducing /
resumeProducing), and reading pauses while output waits (backpressure both ways).
Who owns what else: the Factory holds the Tracker (cap, deadlines), whose sweep runs from one
reactor.callLater chain.
Limits: one thread, so a blocking handler (/sleep, /cpu) stalls every client; per connection a
Protocol, a transport and their buffers; Twisted's own EMFILE handling (a reserved descriptor)
accepts and closes a client it has no descriptor for instead of leaving it in the backlog.
"""
import collections
import sys

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402  (after the reactor choice)
from zope.interface import implementer  # noqa: E402
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer  # noqa: E402

import cmbench_http as http  # noqa: E402


# IHalfCloseableProtocol: a client that sends its requests and then shuts down its side
# (nc -N, shutdown(SHUT_WR)) still gets every response before we close.
@implementer(IPushProducer, IHalfCloseableProtocol)
class HttpProtocol(protocol.Protocol):
    def connectionMade(self) -> None:
        self.session = http.Session()
        self.pending = collections.deque()   # pieces not yet handed to the transport
        self.paused = False                  # the transport's buffer is full
        self.reading_paused = False          # we asked the transport to stop reading
        self.lingering = False
        self.peer_done = False               # the client shut down its side
        self.drained = 0
        self.tracker = self.factory.tracker
        self.transport.bufferSize = http.READ_SIZE   # recv size (and the write high-water mark)
        self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(self, True)
        if not self.tracker.admit(self):
            self.send(self.session.reject(503))

    def dataReceived(self, data: bytes) -> None:
        if self.lingering:                   # lingering close: discard, up to a limit
            self.drained += len(data)
            if self.drained >= http.DRAIN_LIMIT:
                self.transport.abortConnection()
            return
        self.send(self.session.feed(data))

    def send(self, out: list) -> None:
        self.pending.extend(out)
        self.flush()

    def flush(self) -> None:
        """Hand pending pieces to the transport until it says its buffer is full."""
        while self.pending and not self.paused:
            piece = self.pending.popleft()
            self.transport.write(piece if type(piece) is bytes else bytes(piece))  # no views
        session = self.session
        # Pieces we hold, or a transport buffer full enough to pause us: a response in
        # progress, under no idle deadline.
        session.writing = bool(self.pending) or self.paused
        if self.pending or session.more:
            if not self.reading_paused:      # no more input until this output is out
                self.reading_paused = True
                self.transport.pauseProducing()
            if not self.pending:
                # Fairness: the rest of this read's pipelined requests wait until other
                # clients whose bytes are already here have been answered.
                self.give_way(3)
            return
        session.sent()
        if session.closing:
            self.finish()
        elif self.peer_done:
            self.transport.loseConnection()  # every response is out: close our side too
        elif self.reading_paused:
            self.reading_paused = False
            self.transport.resumeProducing()  # read the next request

    # IPushProducer: the transport tells us when its buffer is full and when it drained.
    def pauseProducing(self) -> None:
        self.paused = True
        self.session.writing = True          # the client is not reading what we wrote yet

    def resumeProducing(self) -> None:
        self.paused = False
        self.session.sent()                  # the client is reading: not idle
        self.session.writing = bool(self.pending)
        if self.pending:
            self.flush()

    def stopProducing(self) -> None:
        self.pending.clear()

    def give_way(self, hops: int) -> None:
        """Each reactor iteration runs the due timed calls, then polls and runs dataReceived
        of ready clients; their responses are written at the *next* poll (transport.write
        buffers). So a client whose bytes are here is answered within two iterations, and
        this connection comes back on the third: one callLater(0) per iteration."""
        if hops:
            reactor.callLater(0, self.give_way, hops - 1)
        else:
            self.next_turn()

    def next_turn(self) -> None:
        if self.transport.connected:
            self.send(self.session.feed(b""))

    def finish(self) -> None:
        """Lingering close: half-close once the buffer is written, discard what the client
        still sends; the Tracker aborts at the 1 s deadline."""
        if self.lingering:
            return
        self.lingering = True
        self.transport.unregisterProducer()
        self.transport.loseWriteConnection()
        if self.reading_paused:
            self.transport.resumeProducing()
        self.tracker.linger(self)

    def expire(self, kind: str) -> None:     # from the Tracker's sweep
        if kind == "header":
            self.send(self.session.reject(408))   # then the lingering close
        elif kind == "idle":
            self.transport.loseConnection()  # quietly
        else:
            self.transport.abortConnection()  # linger deadline or stop: time is up

    def readConnectionLost(self) -> None:
        self.peer_done = True
        if self.lingering or not (self.pending or self.session.more):
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass                                 # our own half-close (lingering): keep reading

    def connectionLost(self, reason=None) -> None:
        self.tracker.remove(self)


class HttpFactory(protocol.Factory):
    protocol = HttpProtocol

    def __init__(self, tracker: http.Tracker) -> None:
        self.tracker = tracker


def main() -> None:
    listener, opts = http.start("py-twisted", "Twisted Protocol + Factory on the epoll reactor")
    tracker = http.Tracker(opts)
    listener.setblocking(False)
    port = reactor.adoptStreamPort(listener.fileno(), listener.family, HttpFactory(tracker))
    listener.close()                         # the reactor holds its own duplicate

    def sweep() -> None:
        tracker.sweep()
        reactor.callLater(tracker.tick(), sweep)

    def stop() -> None:
        port.stopListening()
        tracker.close_all()
        reactor.stop()

    http.STOP.on_stop = lambda: reactor.callFromThread(stop)
    reactor.callLater(tracker.tick(), sweep)
    reactor.run(installSignalHandlers=False)   # ours (cmbench_http.STOP) are in place
    sys.exit(0)


if __name__ == "__main__":
    main()
