"""py-threads: a Python thread per connection (standard library only): the GIL's price.

The main thread blocks in accept(); each client gets a thread running the blocking-style loop
cmbench_http.serve_blocking (recv, answer, repeat, the same code py-gevent runs on green
threads). Who owns what: the main thread owns the listener and the Tracker (cap, deadlines);
each thread owns its socket and Session; one sweeper thread checks the deadlines and ends an
expired connection by shutting its socket, which wakes the blocked recv.
Limits: a blocking handler stalls only its own client (the OS switches threads), but only one
thread runs Python at a time (the GIL), so CPU-bound handlers do not run in parallel and every
switch costs a GIL hand-off; each connection costs a thread (its stack is mostly untouched
virtual memory) and --max-clients bounds them; past the cap a client gets 503.
"""
import errno
import socket
import sys
import threading
import time

import cmbench_http as http


def serve_client(conn: http.BlockingConnection, tracker: http.Tracker) -> None:
    try:
        http.serve_blocking(conn, tracker, admitted=True)
    finally:
        conn.sock.close()


def sweeper(tracker: http.Tracker) -> None:
    while True:
        time.sleep(tracker.tick())
        tracker.sweep()


def main() -> None:
    listener, opts = http.start("py-threads", "a Python thread per connection (threading)")
    tracker = http.Tracker(opts)

    stopping = threading.Event()

    def stop() -> None:
        # Runs in the main thread, possibly inside accept(): close every connection, then
        # shut the listener, so the accept() resumed after this handler fails and the loop
        # ends (raising from a signal handler could land anywhere, e.g. inside Thread.start).
        stopping.set()
        tracker.close_all()
        listener.shutdown(socket.SHUT_RDWR)

    http.STOP.on_stop = stop
    threading.Thread(target=sweeper, args=(tracker,), daemon=True).start()
    while not stopping.is_set():
        try:
            sock, _ = listener.accept()
        except OSError as e:
            if stopping.is_set():
                break
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)  # out of descriptors: back off; clients wait in the backlog
            continue
        http.accepted(sock)
        conn = http.BlockingConnection(sock)
        if not tracker.admit(conn):
            http.reject_now(sock, 503)   # no thread for a client past the cap
            continue
        try:
            # daemon: at exit, a thread still sleeping in a handler ends with the process
            threading.Thread(target=serve_client, args=(conn, tracker), daemon=True).start()
        except RuntimeError:
            tracker.remove(conn)
            http.reject_now(sock, 503)   # cannot start a thread: this client only
    listener.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
