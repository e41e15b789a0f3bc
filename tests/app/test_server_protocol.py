"""The HTTP protocol of ``python -m app`` fed bytes directly: a request refused at its headers
gets its 429 without reaching the app, and the connection stays usable for the next one."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from uvicorn.server import ServerState

from app.server import GuardedHttpToolsProtocol

pytestmark = pytest.mark.anyio

REQUEST = (
    b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 17\r\n\r\n{"instances": [1]}'
)[:-1]  # 17 bytes of body


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


async def _protocol(refuse, delay_s: float = 0.0):
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    cls = type(
        "P",
        (GuardedHttpToolsProtocol,),
        {"quick_refusal": staticmethod(refuse), "refusal_delay_s": delay_s},
    )
    protocol = cls(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport, reached


@pytest.mark.parametrize("delay_s", [0.0, 0.05])
async def test_a_refused_request_never_reaches_the_app_and_the_connection_goes_on(delay_s):
    answers = iter([b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n", None])
    protocol, transport, reached = await _protocol(lambda m, p: next(answers), delay_s)
    protocol.data_received(REQUEST)
    if delay_s:
        assert transport.written == b"" and not transport.reading  # held, nothing more read
        await asyncio.sleep(delay_s * 2)
    assert transport.written.startswith(b"HTTP/1.1 429 ") and reached == []
    assert transport.reading and not transport.closed
    transport.written.clear()
    protocol.data_received(REQUEST)  # the next request on the same connection is served
    for _ in range(50):
        if transport.written:
            break
        await asyncio.sleep(0.01)
    assert transport.written.startswith(b"HTTP/1.1 200 ") and reached == ["/v1/models/m:predict"]
    protocol.connection_lost(None)


async def test_the_refusal_sees_the_method_and_the_path_without_the_query():
    seen = []
    protocol, transport, _ = await _protocol(lambda m, p: seen.append((m, p)))
    protocol.data_received(REQUEST.replace(b":predict", b":predict?x=1", 1))
    await asyncio.sleep(0.05)
    assert seen == [(b"POST", b"/v1/models/m:predict")]
    protocol.connection_lost(None)
