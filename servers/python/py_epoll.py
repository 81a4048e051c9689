"""py-epoll: the lecture's select.epoll example, made into a complete server.

The lecture's loop accepts exactly two clients, registers them for EPOLLIN | EPOLLOUT, keeps a
`conn_map` from fileno to socket and calls epoll.poll(1). This is that loop with what it left
out: a listening socket in the same epoll set (new clients at any time), partial reads and
writes (a response that does not fit the socket buffer waits for EPOLLOUT), keep-alive,
pipelining, closing (the peer's EOF, errors, our lingering close), deadlines, a client cap,
running out of descriptors, and stopping on SIGTERM.
Who owns what: the loop owns the epoll set, `conn_map` (fileno -> Connection) and one wake-up
socket for signals; each Connection owns its socket, its cmbench_http.Session and the response
pieces not yet written. Interest is level-triggered and exact: EPOLLIN while a connection waits
for a request, EPOLLOUT while output is pending, nothing while it waits for its next turn.
Limits: one thread, so a blocking handler (/sleep, /cpu) stalls every client; readiness costs
an epoll_wait per loop turn and a recv/send per event, in Python.
"""
import collections
import errno
import select
import signal
import socket
import sys
import time

import cmbench_http as http

ACCEPTS_PER_WAKE = 64        # new clients per wake-up: a flood of connects cannot starve the rest
ACCEPT_PAUSE = 0.1           # out of descriptors: stop watching the listener this long


class Connection:
    __slots__ = ("server", "sock", "fd", "session", "out", "mask", "draining", "drained")

    def __init__(self, server: "Server", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.session = http.Session()
        self.out = collections.deque()   # response pieces not yet (fully) sent
        self.mask = select.EPOLLIN
        self.draining = False            # final response sent: discard input until EOF
        self.drained = 0

    def expire(self, kind: str) -> None:
        self.server.expire(self, kind)


class Server:
    def __init__(self, listener: socket.socket, opts: http.Options) -> None:
        self.listener = listener
        self.epoll = select.epoll()
        self.conn_map: dict[int, Connection] = {}
        self.tracker = http.Tracker(opts)
        self.next_turn: list[Connection] = []   # pipelined requests waiting for their turn
        self.accept_paused_until = 0.0
        self.running = True
        # Signals arrive as a byte on this socket (signal.set_wakeup_fd), so epoll.poll wakes.
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def run(self) -> int:
        listen_fd, wake_fd = self.listener.fileno(), self.wake_r.fileno()
        self.listener.setblocking(False)
        self.epoll.register(listen_fd, select.EPOLLIN)
        self.epoll.register(wake_fd, select.EPOLLIN)
        signal.set_wakeup_fd(self.wake_w.fileno())
        http.STOP.on_stop = self.stop
        tracker = self.tracker
        while self.running:
            # Connections that used up their turn wait until the others' events are handled.
            turn, self.next_turn = self.next_turn, []
            events = self.epoll.poll(0 if turn else tracker.tick())
            for fileno, event in events:
                if fileno == listen_fd:
                    self.accept_clients()
                elif fileno == wake_fd:
                    self.wake_r.recv(64)
                else:
                    conn = self.conn_map.get(fileno)
                    if conn is not None:
                        self.on_event(conn, event)
            for conn in turn:
                if conn.fd in self.conn_map:
                    self.respond(conn, conn.session.feed(b""))
            if self.accept_paused_until and time.monotonic() >= self.accept_paused_until:
                self.accept_paused_until = 0.0
                self.epoll.register(listen_fd, select.EPOLLIN)
            tracker.sweep()
        tracker.close_all()
        return 0

    def stop(self) -> None:      # from the signal handler: the loop ends after this turn
        self.running = False

    def accept_clients(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The listener stays readable, so accepting again at once would spin: stop
                    # watching it for a moment (as nginx does); clients wait in the backlog.
                    self.epoll.unregister(self.listener.fileno())
                    self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                    return
                continue             # e.g. ECONNABORTED: that client only
            sock.setblocking(False)
            http.accepted(sock)
            conn = Connection(self, sock)
            self.conn_map[conn.fd] = conn
            self.epoll.register(conn.fd, select.EPOLLIN)
            if not self.tracker.admit(conn):
                self.respond(conn, conn.session.reject(503))

    def on_event(self, conn: Connection, event: int) -> None:
        if conn.draining:
            return self.drain(conn)
        if conn.out:                 # EPOLLOUT: the rest of a response fits now
            return self.respond(conn, [])
        try:
            data = conn.sock.recv(http.READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            return self.close(conn)  # reset or failed: this connection only
        if not data:
            return self.close(conn)  # the peer closed
        self.respond(conn, conn.session.feed(data))

    def respond(self, conn: Connection, out: list) -> None:
        """Queue `out`, write what the socket takes, then decide what to wait for."""
        conn.out.extend(out)
        while conn.out:
            piece = conn.out[0]
            try:
                n = conn.sock.send(piece)
            except BlockingIOError:
                break
            except OSError:
                return self.close(conn)
            if n < len(piece):
                conn.out[0] = memoryview(piece)[n:]
                break
            conn.out.popleft()
        session = conn.session
        session.sent()               # progress either way: not idle
        session.writing = bool(conn.out)   # a response in progress: no idle deadline
        if conn.out:
            self.want(conn, select.EPOLLOUT)
        elif session.closing:
            self.linger(conn)
        elif session.more:
            self.want(conn, 0)       # fairness: the rest of this read waits for the next turn
            self.next_turn.append(conn)
        else:
            self.want(conn, select.EPOLLIN)

    def want(self, conn: Connection, mask: int) -> None:
        if mask != conn.mask:
            self.epoll.modify(conn.fd, mask)
            conn.mask = mask

    def linger(self, conn: Connection) -> None:
        """Lingering close: stop sending and discard what the client still sends, so closing
        does not reset the connection under an unread response; ends at the 1 s deadline."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return self.close(conn)
        conn.draining = True
        self.want(conn, select.EPOLLIN)
        self.tracker.linger(conn)

    def drain(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(http.READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= http.DRAIN_LIMIT:
            self.close(conn)

    def expire(self, conn: Connection, kind: str) -> None:
        if kind == "header" and conn.fd in self.conn_map:
            self.respond(conn, conn.session.reject(408))   # then the lingering close
        else:
            self.close(conn)         # idle: silently; linger or stop: time is up

    def close(self, conn: Connection) -> None:
        if self.conn_map.pop(conn.fd, None) is None:
            return
        self.tracker.remove(conn)
        self.epoll.unregister(conn.fd)
        conn.sock.close()


def main() -> None:
    listener, opts = http.start("py-epoll", "the lecture's select.epoll loop, completed")
    sys.exit(Server(listener, opts).run())


if __name__ == "__main__":
    main()
