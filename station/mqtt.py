"""The paho MQTT client both wings build, from one description of the broker.

The contract itself (topics, messages) is ``station.wire``; this is the plumbing that carries it.
"""

from __future__ import annotations

import logging
import time
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
    if current == {Properties} and paho.mqtt.__version__.startswith("2."):
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
