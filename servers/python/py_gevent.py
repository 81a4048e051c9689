"""py-gevent: green threads. gevent's StreamServer runs blocking-style handler code, one
greenlet per connection, on one OS thread.

The handler is cmbench_http.serve_blocking, the very loop py-threads runs on OS threads: recv,
answer, repeat. The difference is the socket: gevent's socket.recv does not block the thread;
it parks the greenlet on its file descriptor in the hub (libev's loop, epoll underneath) and
switches to whichever greenlet can run, so straight-line code gets an event loop's economy.
(This is what monkey-patching does to the standard library; here we use gevent's sockets
directly and patch nothing, so /sleep's time.sleep stays the real, blocking one.)
Who owns what: the hub owns the loop; StreamServer owns the listener and spawns a greenlet per
client; each greenlet owns its socket and Session; one sweeper greenlet checks the deadlines.
Limits: one OS thread, so a handler that blocks without yielding (/sleep, /cpu) stalls every
greenlet; each connection costs a greenlet with its own slice of C stack, copied in and out on
every switch; the read is 16 KiB per recv.
"""
import sys

import gevent
import gevent.event
from gevent.server import StreamServer

import cmbench_http as http


def give_way() -> None:
    """Let clients whose bytes have already arrived go first. sleep(0) would resume this
    greenlet before the hub even polls; a due timer fires after the poll, but libev runs the
    watchers one poll found last-queued-first, so the timer still beats the I/O it found. A
    second timer, armed in that iteration, fires only in the next one, after those clients."""
    gevent.sleep(1e-6)
    gevent.sleep(1e-6)


def main() -> None:
    listener, opts = http.start("py-gevent", "gevent StreamServer, a greenlet per connection")
    tracker = http.Tracker(opts)

    def handle(sock, address) -> None:
        http.accepted(sock)
        conn = http.BlockingConnection(sock)
        # A connection with pipelined requests left lets the others run first (give_way).
        http.serve_blocking(conn, tracker, yield_turn=give_way)
        # StreamServer closes the socket when the handler returns

    def sweeper() -> None:
        while True:
            gevent.sleep(tracker.tick())
            tracker.sweep()

    listener.setblocking(False)   # StreamServer accepts until EAGAIN
    server = StreamServer(listener, handle)
    done = gevent.event.Event()

    def stop() -> None:      # the signal handler may run in any greenlet: only schedule
        gevent.get_hub().loop.run_callback_threadsafe(done.set)

    http.STOP.on_stop = stop
    server.start()
    gevent.spawn(sweeper)
    done.wait()
    server.close()           # stop accepting
    tracker.close_all()      # shut every client's socket: their greenlets see EOF and end
    gevent.sleep(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
