"""py-uvloop: the py-asyncio server, unchanged, on uvloop's event loop.

uvloop replaces asyncio's pure-Python selector loop with one written in Cython over libuv (the
loop under Node.js and the C++ `libuv` model): the same Tasks, streams and session code run, so
a difference between the two rows is the cost of the loop itself. Who owns what and the limits
are py-asyncio's (py_asyncio.py); uvloop's transports read 256 KiB per recv from libuv.
"""
import uvloop

import py_asyncio

if __name__ == "__main__":
    py_asyncio.main("py-uvloop", "the py-asyncio code on uvloop's loop (libuv)",
                    loop_factory=uvloop.new_event_loop)
