"""The MQTT client's plumbing under load: reads served from one larger read (``ReadAhead``) and a
batch's PUBACKs in one write (``ack_all``), on socket pairs and through a real broker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest
from harness import Broker, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.mqtt import READ_AHEAD, ReadAhead, ack_all, make_client, read_ahead
from station.mqtt import Broker as BrokerAddress
from station.wire import CentralStatus, State


class Counted:
    """A socket that counts the system calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.recvs = 0
        self.sends = 0
        self.acks = 0
        """Sends made for one ``ack_all`` (set by :func:`drain`)."""

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        return self.sock.recv(size)

    def send(self, data: bytes) -> int:
        self.sends += 1
        return self.sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def pair() -> Iterator[tuple[ReadAhead, Counted, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    counted = Counted(ours)
    yield ReadAhead(counted), counted, theirs
    ours.close()
    theirs.close()


def test_small_reads_are_served_from_one_read(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, counted, peer = pair
    packets = b"".join(bytes([0x30, 5]) + b"hello" for _ in range(100))  # as paho reads: 1, 1, then the rest
    peer.sendall(packets)
    got = b""
    for _ in range(100):
        got += reads.recv(1) + reads.recv(1) + reads.recv(5)
    assert got == packets
    assert counted.recvs == 1
    assert reads.pending() == 0


def test_pending_says_what_is_held(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, _, peer = pair
    peer.sendall(b"abcdef")
    assert reads.pending() == 0  # nothing read yet: the socket's readiness says it
    assert reads.recv(2) == b"ab"
    assert reads.pending() == 4
    assert reads.recv(10) == b"cdef"  # what is held, not more: the next read asks the socket
    assert reads.pending() == 0


def test_nothing_come_is_the_sockets_own_would_block(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, _, peer = pair
    with pytest.raises(BlockingIOError):
        reads.recv(1)
    peer.sendall(b"x")
    assert reads.recv(1) == b"x"
    with pytest.raises(BlockingIOError):
        reads.recv(1)


def test_a_closed_connection_reads_empty(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, _, peer = pair
    peer.sendall(b"last")
    peer.shutdown(socket.SHUT_WR)
    assert reads.recv(1) == b"l"
    assert reads.recv(100) == b"ast"
    assert reads.recv(1) == b""


def test_a_read_larger_than_the_read_ahead_is_not_cut(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, _, peer = pair
    big = bytes(range(256)) * (3 * READ_AHEAD // 256)
    sender = threading.Thread(target=peer.sendall, args=(big,))
    sender.start()
    got = b""
    while len(got) < len(big):
        try:
            got += reads.recv(len(big) - len(got))
        except BlockingIOError:
            threading.Event().wait(0.001)
    sender.join()
    assert got == big


def test_everything_else_is_the_sockets(pair: tuple[ReadAhead, Counted, socket.socket]) -> None:
    reads, counted, peer = pair
    assert reads.fileno() == counted.sock.fileno()
    reads.send(b"to the broker")
    assert peer.recv(100) == b"to the broker"


def test_other_paho_versions_keep_their_own_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    monkeypatch.setattr(paho.mqtt, "__version__", "3.0.0")
    assert not read_ahead(client)
    assert "_create_socket" not in vars(client)


def client_for(broker: Broker, name: str, **kwargs: Any) -> mqtt.Client:
    will = CentralStatus(state=State.OFFLINE, submitter=name)
    return make_client(BrokerAddress("127.0.0.1", broker.port), name, (f"test/{name}/status", will), **kwargs)


def queue_for(broker: Broker, name: str, n: int, qos: int = 1) -> None:
    """A persistent session for ``name`` subscribed to ``test/q``, and ``n`` messages queued in it."""
    sub = client_for(broker, name, manual_ack=True)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    done = threading.Event()
    sub.on_subscribe = lambda *a: done.set()
    sub.on_connect = lambda c, *a: c.subscribe("test/q", qos=qos)
    sub.connect("127.0.0.1", broker.port, clean_start=True, properties=props)
    sub.loop_start()
    assert done.wait(10)
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    infos = [pub.publish("test/q", f"{i:05d}".encode() * 40, qos=qos) for i in range(n)]
    for info in infos:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()


def drain(broker: Broker, name: str, n: int, ack: str) -> tuple[list[bytes], Counted | None]:
    """Connect ``name`` again and take what its session holds: ``ack`` "all" (one ``ack_all``), or
    "none". Returns the payloads and the client's socket, counted."""
    got: list[mqtt.MQTTMessage] = []
    client = client_for(broker, name, manual_ack=True, max_inflight=1000)
    sockets: list[Counted] = []
    create = client._create_socket

    def counted() -> Any:
        made: Any = create()
        sockets.append(Counted(made._sock))
        made._sock = sockets[-1]
        return made

    client._create_socket = counted  # type: ignore[method-assign]
    client.on_message = lambda c, u, m: got.append(m)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert connected.wait(10)
        wait_for(lambda: len(got) >= n, 20, what=f"{n} messages")
        threading.Event().wait(0.3)  # none more
        if ack == "all":
            before = sockets[-1].sends
            ack_all(client, got)
            wait_for(lambda: not client._out_packet, 5, what="the PUBACKs written")
            sockets[-1].acks = sockets[-1].sends - before
    finally:
        client.disconnect()
        client.loop_stop()
    return [bytes(m.payload) for m in got], sockets[-1] if sockets else None


def test_a_queue_of_messages_arrives_whole_and_in_order_through_the_read_ahead(broker: Broker) -> None:
    n = 3000
    queue_for(broker, "reads", n)
    got, sock = drain(broker, "reads", n, "all")
    assert got == [f"{i:05d}".encode() * 40 for i in range(n)]
    assert sock is not None and sock.recvs < n // 4  # ~600 KB in reads of up to 64 KiB, not 4 a message


def test_one_ack_all_takes_a_whole_batch_off_the_session(broker: Broker) -> None:
    n = 500
    queue_for(broker, "acks", n)
    got, sock = drain(broker, "acks", n, "all")
    assert len(got) == n
    assert sock is not None and 1 <= sock.acks <= 3
    again, _ = drain(broker, "acks", 0, "none")
    assert again == []  # the broker took every PUBACK: nothing is sent again


def test_messages_not_acked_come_again(broker: Broker) -> None:
    queue_for(broker, "unacked", 50)
    first, _ = drain(broker, "unacked", 50, "none")
    again, _ = drain(broker, "unacked", 50, "none")
    assert again == first and len(first) == 50


def test_qos_2_messages_are_acked_one_by_one(broker: Broker) -> None:
    queue_for(broker, "twice", 20, qos=2)
    got, _ = drain(broker, "twice", 20, "all")
    assert len(got) == 20
    again, _ = drain(broker, "twice", 0, "none")
    assert again == []


def test_the_submitter_collects_less_often_and_never_looks_at_what_start_up_made() -> None:
    import gc

    from station import runtime

    before = gc.get_threshold()
    try:
        runtime.collect_less()
        assert gc.get_threshold()[0] == runtime.YOUNG_OBJECTS > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
