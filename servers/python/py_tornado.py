"""py-tornado: coroutines over Tornado's IOStream. A TCPServer whose handle_stream is an
`async def` per connection.

Tornado began with callbacks, then generators (`yield stream.read_bytes(...)`), now native
coroutines on asyncio's loop: `await stream.read_bytes(n, partial=True)` parks the coroutine
until the IOStream has data; `await stream.write(...)` until its buffer has been written.
Who owns what: the IOLoop (asyncio's, epoll underneath) owns the sockets; each IOStream owns
its read and write buffers (16 KiB reads: read_chunk_size); each coroutine owns its
cmbench_http.Session; the server holds the Tracker (cap, deadlines), swept by one
PeriodicCallback-style timer; a deadline cancels the coroutine's Task or closes its stream.
Accepting is ours rather than netutil.add_accept_handler's: that one raises on EMFILE and the
still-readable listener would spin, so ours pauses the listener for 100 ms instead.
Limits: one thread, so a blocking handler (/sleep, /cpu) stalls every client; IOStream copies
every read into its own buffer, then into ours: two layers of Python buffering on asyncio's.
"""
import asyncio
import errno
import socket
import sys

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.tcpserver import TCPServer

import cmbench_http as http


class Connection:
    __slots__ = ("session", "stream", "task", "expired", "reading")

    def __init__(self, stream) -> None:
        self.session = http.Session()
        self.stream = stream
        self.task = asyncio.current_task()
        self.expired = None
        self.reading = None      # the IOStream's read in progress

    async def read(self) -> bytes:
        """The next bytes from the stream. An IOStream allows one read at a time and does not
        forget a read whose waiter was cancelled (a deadline cancels our Task), so the read is
        shielded and kept: after a cancel, the next read() awaits the same one."""
        if self.reading is None:
            self.reading = self.stream.read_bytes(http.READ_SIZE, partial=True)
        data = await asyncio.shield(self.reading)
        self.reading = None
        return data

    def expire(self, kind: str) -> None:   # "idle", "header", "linger" or "stop"
        self.expired = kind
        self.task.cancel()


class HttpServer(TCPServer):
    def __init__(self, tracker: http.Tracker) -> None:
        super().__init__(read_chunk_size=http.READ_SIZE)
        self.tracker = tracker

    async def handle_stream(self, stream, address) -> None:
        conn = Connection(stream)
        session, tracker = conn.session, self.tracker
        stream.set_nodelay(True)
        try:
            if not tracker.admit(conn):
                await self.write(stream, session, session.reject(503))
            while not session.closing:
                if session.more:
                    # Fairness: other clients first. As in py_asyncio.give_way, each
                    # sleep(0) is one hop through the ready queue; a client whose bytes are
                    # here needs three after the poll (IOStream callback, its read future,
                    # the shield in Connection.read), so this one hops four times.
                    for _ in range(4):
                        await asyncio.sleep(0)
                    out = session.feed(b"")
                else:
                    out = session.feed(await conn.read())
                if out:
                    await self.write(stream, session, out)
            await self.linger(stream, conn)
        except asyncio.CancelledError:
            if conn.expired == "header":      # the head did not complete in time: 408, close
                try:
                    await self.write(stream, session, session.reject(408))
                    conn.expired = None
                    await self.linger(stream, conn)
                except (asyncio.CancelledError, StreamClosedError):
                    pass
        except StreamClosedError:
            pass                              # the peer closed or reset: this one only
        finally:
            tracker.remove(conn)
            stream.close()

    @staticmethod
    async def write(stream, session: http.Session, out: list) -> None:
        session.writing = True    # a response in progress: no idle deadline until it is out
        try:
            for piece in out:     # /bytes/N comes as 64 KiB views: one at a time bounds memory
                await stream.write(piece)
                session.sent()    # progress: a slow reader is not idle while it reads
        finally:
            session.writing = False

    async def linger(self, stream, conn: Connection) -> None:
        """Lingering close: shut our side, discard what the client still sends until it
        closes; the Tracker cancels this at the absolute 1 s deadline."""
        try:
            stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return
        self.tracker.linger(conn)
        drained = 0
        while drained < http.DRAIN_LIMIT:
            drained += len(await conn.read())

    def listen_on(self, listener: socket.socket) -> None:
        """Accept clients from `listener`, pausing 100 ms when out of descriptors."""
        loop = IOLoop.current()
        listener.setblocking(False)

        def on_readable(fd, events) -> None:
            for _ in range(64):
                try:
                    sock, address = listener.accept()
                except BlockingIOError:
                    return
                except OSError as e:
                    if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        loop.remove_handler(listener)
                        loop.call_later(0.1, loop.add_handler, listener, on_readable, IOLoop.READ)
                        return
                    continue
                self._handle_connection(sock, address)   # TCPServer wraps it in an IOStream

        loop.add_handler(listener, on_readable, IOLoop.READ)


async def serve() -> int:
    listener, opts = http.start("py-tornado", "Tornado TCPServer + IOStream, coroutines")
    tracker = http.Tracker(opts)
    server = HttpServer(tracker)
    server.listen_on(listener)
    loop = IOLoop.current()
    stopped = asyncio.Event()
    http.STOP.on_stop = lambda: loop.add_callback_from_signal(stopped.set)

    def sweep() -> None:
        tracker.sweep()
        loop.call_later(tracker.tick(), sweep)

    loop.call_later(tracker.tick(), sweep)
    await stopped.wait()
    loop.remove_handler(listener)             # stop accepting
    listener.close()
    tracker.close_all()
    await asyncio.sleep(0)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve()))
