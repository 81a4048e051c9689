"""py-asyncio: asyncio streams, the mainstream answer to "how do we hide select.epoll?".

asyncio.start_server runs serve_client() as one Task per connection; each Task reads top to
bottom like blocking code, and every `await` hands the loop back (reader.read parks the Task
until its socket is readable; writer.drain parks it while the transport's buffer is full).
The loop (one thread, epoll underneath) owns the sockets and their buffers; a Task owns its
cmbench_http.Session, which parses and builds the responses. One periodic callback sweeps the
deadlines of every connection (cmbench_http.Tracker); a deadline cancels the Task it ends.
Limits: one thread, so a handler that blocks (/sleep, /cpu) stalls every client; the
StreamReader reads what the transport hands it (asyncio's transport reads up to 256 KiB per
recv; we take 16 KiB per read() from it); per connection a Task, a StreamReader/Writer pair and
a transport: several KiB where the epoll loop in C++ keeps a small struct.
py-uvloop runs this same code on uvloop's loop (see py_uvloop.py).
"""
import asyncio
import sys

import cmbench_http as http

# asyncio uses start_server()'s backlog twice: as listen()'s queue, and as the number of
# accept() calls one readiness event may make. CPython 3.11's accept loop does not stop at
# EMFILE: each of those calls fails again, is logged with its traceback and schedules its own
# retry 1 s later, so with a 4096 backlog a listener at the fd limit cost 4096 failed accepts,
# log records and retries per turn (up to half a core and ~70k lines of stderr a second). We let asyncio
# make its own default of 100 accepts per turn and give the kernel our --backlog ourselves.
ACCEPTS_PER_TURN = 100


class Connection:
    """What the Tracker sees of one client: its session, and how to end its Task."""
    __slots__ = ("session", "task", "expired")

    def __init__(self, task: asyncio.Task) -> None:
        self.session = http.Session()
        self.task = task
        self.expired = None

    def expire(self, kind: str) -> None:   # "idle", "header", "linger" or "stop"
        self.expired = kind
        self.task.cancel()


async def give_way() -> None:
    """Let every client whose bytes have already arrived go before this one's next turn.
    One sleep(0) moves a Task to the back of the ready queue, but a waiting client needs two
    hops after the loop's poll sees its socket (the transport's callback feeds its reader,
    which schedules its Task), so the Task giving way hops three times."""
    for _ in range(3):
        await asyncio.sleep(0)


async def write(writer: asyncio.StreamWriter, session: http.Session, out: list) -> None:
    session.writing = True        # a response in progress: no idle deadline until it is out
    try:
        for piece in out:         # /bytes/N comes as 64 KiB views: drain keeps memory bounded
            writer.write(piece)
            await writer.drain()
            session.sent()        # progress: a slow reader is not idle while it reads
    finally:
        session.writing = False


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 conn: Connection, tracker: http.Tracker) -> None:
    """Lingering close: shut our side once the response is out, then discard what the client
    still sends until it closes; the Tracker ends this at an absolute 1 s deadline."""
    writer.write_eof()
    tracker.linger(conn)
    drained = 0
    while drained < http.DRAIN_LIMIT:
        data = await reader.read(http.READ_SIZE)
        if not data:
            return
        drained += len(data)


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       tracker: http.Tracker) -> None:
    conn = Connection(asyncio.current_task())
    session = conn.session
    try:
        if not tracker.admit(conn):
            await write(writer, session, session.reject(503))
            await linger(reader, writer, conn, tracker)
            return
        while True:
            if session.more:
                # Fairness: the session answered its share of this read's pipelined requests;
                # let every other connection have a turn before answering the rest.
                await give_way()
                out = session.feed(b"")
            else:
                data = await reader.read(http.READ_SIZE)
                if not data:
                    return
                out = session.feed(data)
            if out:
                await write(writer, session, out)
            if session.closing:
                await linger(reader, writer, conn, tracker)
                return
    except asyncio.CancelledError:
        if conn.expired == "header":    # the head did not complete in time: 408, then close
            try:
                await write(writer, session, session.reject(408))
                conn.expired = None
                await linger(reader, writer, conn, tracker)
            except (asyncio.CancelledError, ConnectionError):
                pass
        elif conn.expired is None:
            raise                       # the loop itself is shutting down
    except (ConnectionError, OSError):
        pass                            # reset or failed: this connection only
    finally:
        tracker.remove(conn)
        if conn.expired is None and not writer.transport.is_closing():
            writer.close()              # orderly: flushes what is buffered
        else:
            writer.transport.abort()    # deadline or stop: no waiting for a stalled reader


def quiet_fd_limit(loop: asyncio.AbstractEventLoop, stopped: asyncio.Event) -> None:
    """At the fd limit, report "out of system resource" once a second instead of once per failed
    accept(), as nginx logs "accept() failed (24: Too many open files)" once per back-off.
    After the stop, the accept retries still pending find the listener closed (ValueError from
    the selector); they are the shutdown, not a fault, and are not reported."""
    last_report = float("-inf")

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        nonlocal last_report
        if context.get("message") == "socket.accept() out of system resource":
            if loop.time() - last_report < 1.0:
                return
            last_report = loop.time()
        elif stopped.is_set() and isinstance(context.get("exception"), ValueError):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def serve(model: str, description: str) -> int:
    listener, opts = http.start(model, description)
    loop = asyncio.get_running_loop()
    tracker = http.Tracker(opts)
    stopped = asyncio.Event()
    quiet_fd_limit(loop, stopped)
    http.STOP.on_stop = lambda: loop.call_soon_threadsafe(stopped.set)

    def sweep() -> None:
        tracker.sweep()
        loop.call_later(tracker.tick(), sweep)

    server = await asyncio.start_server(lambda r, w: serve_client(r, w, tracker), sock=listener,
                                        backlog=ACCEPTS_PER_TURN)
    listener.listen(opts.backlog)       # asyncio's listen() above set the kernel's queue to 100
    loop.call_later(tracker.tick(), sweep)
    await stopped.wait()
    server.close()                      # stop accepting
    tracker.close_all()                 # cancel every connection's Task
    await asyncio.sleep(0)
    return 0


def main(model: str = "py-asyncio", description: str = "asyncio streams (start_server, async def)",
         loop_factory=None) -> None:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        sys.exit(runner.run(serve(model, description)))


if __name__ == "__main__":
    main()
