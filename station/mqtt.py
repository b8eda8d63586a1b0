"""The paho MQTT client both wings build, from one description of the broker.

The contract itself (topics, messages) is ``station.wire``; this is the plumbing that carries it.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from station.wire import Message

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties


@dataclass(frozen=True)
class Broker:
    """How to reach the broker, as either side's configuration says."""

    host: str = "localhost"
    port: int = 1883
    keepalive: int = 30
    username: str = ""
    password: str | None = None
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def _paho_2() -> bool:
    """Whether paho-mqtt is 2.x: the version whose internals the helpers below rely on."""
    import paho.mqtt

    return paho.mqtt.__version__.startswith("2.")


def lean_properties() -> bool:
    """Make paho build MQTT 5 properties without remaking its tables each time; True when in place.

    paho-mqtt 2.x's ``Properties.__init__`` builds its tables of names, types and packets (three
    containers, 45 entries) for every properties object, and the client makes one for every
    message it receives under MQTT 5 and every PUBACK its publishes get back: 13 us each here, and
    the allocations drive the garbage collector, so that with a queue of received messages they
    were half the submitter's network thread (6,100 events/s ingested one a message; 10,600-11,000
    with this). :class:`LeanProperties` is paho's class with the tables made once and shared (paho only
    reads them) and ``clear()`` deleting what was set instead of testing all 27 names; the values,
    the checks on setting them, ``pack()`` and ``unpack()`` are paho's own
    (``tests/test_mqtt_properties.py`` holds them to the same bytes and values). Installed in the
    paho modules that make properties objects, for paho 2.x only; any other version is left as it is.
    """
    import paho.mqtt
    import paho.mqtt._packet
    import paho.mqtt.client
    from paho.mqtt.properties import Properties

    users = (paho.mqtt._packet, paho.mqtt.client)  # the modules that make properties objects
    current = {getattr(module, "Properties", None) for module in users}
    if current == {Properties} and _paho_2():
        lean = _lean_class(Properties)
        for module in users:
            setattr(module, "Properties", lean)  # noqa: B010 (a module's global, set as such)
        return True
    if len(current) == 1 and getattr(current.pop(), "__name__", "") == "LeanProperties":
        return True  # in place already
    logging.getLogger(__name__).info("paho-mqtt %s: its own properties objects kept", paho.mqtt.__version__)
    return False


def _lean_class(base: type[Properties]) -> type[Properties]:
    from paho.mqtt.packettypes import PacketTypes

    made = base(PacketTypes.PUBLISH)
    tables = (made.types, made.names, made.properties)
    own = frozenset(made.__dict__)  # packetType, types, names, properties: the rest are values

    class LeanProperties(base):  # type: ignore[valid-type, misc]
        __doc__ = base.__doc__

        def __init__(self, packetType: int) -> None:
            values = self.__dict__  # as paho's __setattr__ sets them: straight into the instance
            values["packetType"] = packetType
            values["types"], values["names"], values["properties"] = tables

        def clear(self) -> None:
            values = self.__dict__
            for name in [name for name in values if name not in own]:
                del values[name]

    return LeanProperties


READ_AHEAD = 64 * 1024
"""Bytes a client's socket reads at once (:class:`ReadAhead`)."""


class ReadAhead:
    """A connected socket whose small reads are served from one larger read.

    paho-mqtt 2.x reads a packet in three or more ``recv`` calls (its first byte, each byte of its
    length, then the rest), and one packet per wake of its loop: with a queue of messages waiting,
    that was four system calls and a ``select`` a message, most of a bare subscriber's time here.
    This reads up to :data:`READ_AHEAD` bytes at once and hands them out as asked; its ``pending()``
    (which paho's loop asks of any socket, as it does of a TLS socket's decrypted bytes) says what
    is held, so the loop reads on at once instead of waiting in ``select`` for bytes already read.
    A read raises or returns what the socket would: ``BlockingIOError`` (or TLS's want-read) when
    nothing is held and nothing has come, ``b""`` when the broker closed the connection. Everything
    else (``send``, ``fileno``, ``close``...) is the socket's own. (A loop outside paho's, woken by
    the socket's readiness, would not see what is held: both wings run paho's own loop.)"""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._held = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        held, at = self._held, self._at
        if at >= len(held):
            held, at = bytes(self._sock.recv(max(size, READ_AHEAD))), 0
            if len(held) <= size:  # all of it asked for (or the end of the stream): nothing to hold
                self._held, self._at = b"", 0
                return held
            self._held = held
        end = min(at + size, len(held))
        self._at = end
        return held[at:end]

    def pending(self) -> int:
        """Bytes read and not yet handed out, and those the socket itself holds (TLS)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._held) - self._at + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def read_ahead(client: mqtt.Client) -> bool:
    """Make ``client`` read through :class:`ReadAhead` from its next connection on; True when in
    place (paho-mqtt 2.x, whose connections are made by ``_create_socket``), False with any other
    version, which keeps its own reads."""
    create = getattr(client, "_create_socket", None) if _paho_2() else None
    if create is None:
        return False

    def _create_socket() -> ReadAhead:
        return ReadAhead(create())

    client._create_socket = _create_socket  # type: ignore[method-assign]
    return True


def ack_all(client: mqtt.Client, messages: Iterable[mqtt.MQTTMessage]) -> None:
    """Acknowledge received messages (a ``manual_ack`` client): the PUBACKs of those of QoS 1 in
    one write. paho's ``ack()`` queues one packet for each and wakes its loop for each, which then
    makes one ``send`` for each: a thousand system calls for a batch of a thousand messages. With
    paho 2.x, the same PUBACKs (MQTT 5 allows the short form, without reason code or properties,
    for success) go as one queued write; with any other version, or for QoS 2, ``ack()`` each."""
    from paho.mqtt.client import PUBACK

    queue_packet: Callable[..., Any] | None = getattr(client, "_packet_queue", None) if _paho_2() else None
    single, mids = [], []
    for message in messages:
        if message.qos == 1 and queue_packet is not None:
            mids.append(message.mid)
        elif message.qos:
            single.append(message)
    if mids and queue_packet is not None:  # paho writes a queued packet's bytes as they are: several PUBACKs in one
        queue_packet(PUBACK, b"".join(_PUBACK.pack(PUBACK, 2, mid) for mid in mids), 0, 0)
    for message in single:
        client.ack(message.mid, message.qos)


_PUBACK = struct.Struct("!BBH")


def json_properties() -> Properties:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "application/json"
    return props


def make_client(
    broker: Broker,
    client_id: str,
    will: tuple[str, Message],
    *,
    manual_ack: bool = False,
    max_inflight: int = 100,
    max_reconnect_delay: int = 60,
) -> mqtt.Client:
    """A paho MQTT 5 client with credentials, TLS (with a client certificate when given) and a
    retained will. The caller sets its callbacks and connects."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    lean_properties()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    read_ahead(client)
    client.max_inflight_messages_set(max_inflight)
    client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_delay)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(
            ca_certs=broker.ca_file or None, certfile=broker.cert_file or None, keyfile=broker.key_file or None
        )
    topic, message = will
    client.will_set(topic, message.to_json(), qos=1, retain=True)
    return client


class BrokerWatch:
    """One log line when the broker cannot be reached, and one when it is back: not one per retry.

    Set as the client's ``on_connect_fail`` (paho calls it for each failed attempt of its own
    reconnect loop); call :meth:`up` from ``on_connect`` and :meth:`down` from ``on_disconnect``.
    """

    def __init__(self, log: logging.Logger, host: str, port: int) -> None:
        self.log = log
        self.where = f"{host}:{port}"
        self.since: float | None = None
        self.failures = 0

    def failed(self, client: Any = None, userdata: Any = None) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("mqtt: broker %s unreachable; retrying in the background", self.where)

    def down(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def up(self) -> None:
        if self.since is not None and self.failures:
            self.log.info(
                "mqtt: broker %s reachable again after %.0f s (%d failed attempts)",
                self.where,
                time.monotonic() - self.since,
                self.failures,
            )
        self.since, self.failures = None, 0
