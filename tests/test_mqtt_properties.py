"""paho's MQTT 5 properties made the lean way (``station.mqtt.lean_properties``) are paho's own:
the same bytes packed, the same values unpacked, the same refusals, through a real broker too."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt._packet
import paho.mqtt.client as mqtt
import pytest
from harness import Broker
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from station.mqtt import lean_properties

#: A value each property may take (lists for the two that may repeat).
VALUES: dict[str, Any] = {
    "PayloadFormatIndicator": 1,
    "MessageExpiryInterval": 3600,
    "ContentType": "application/json",
    "ResponseTopic": "karekod/central/answers",
    "CorrelationData": b"\x00\x01\xfe",
    "SubscriptionIdentifier": [7, 300],
    "SessionExpiryInterval": 86400,
    "AssignedClientIdentifier": "auto-1",
    "ServerKeepAlive": 30,
    "AuthenticationMethod": "SCRAM-SHA-1",
    "AuthenticationData": b"secret",
    "RequestProblemInformation": 0,
    "WillDelayInterval": 5,
    "RequestResponseInformation": 1,
    "ResponseInformation": "karekod/",
    "ServerReference": "other-broker:1883",
    "ReasonString": "İTS: ürün bulunamadı",
    "ReceiveMaximum": 1000,
    "TopicAliasMaximum": 10,
    "TopicAlias": 3,
    "MaximumQoS": 1,
    "RetainAvailable": 1,
    "UserProperty": [("station", "dock-1"), ("şube", "İzmir")],
    "MaximumPacketSize": 268435455,
    "WildcardSubscriptionAvailable": 1,
    "SubscriptionIdentifierAvailable": 0,
    "SharedSubscriptionAvailable": 1,
}
PACKETS = [PacketTypes.CONNECT, PacketTypes.CONNACK, PacketTypes.PUBLISH, PacketTypes.PUBACK, PacketTypes.SUBSCRIBE,
           PacketTypes.DISCONNECT, PacketTypes.AUTH, PacketTypes.WILLMESSAGE]  # fmt: skip


@pytest.fixture(scope="module")
def lean() -> type[Properties]:
    assert lean_properties()
    made: type[Properties] = paho.mqtt._packet.Properties  # type: ignore[attr-defined]
    assert made.__name__ == "LeanProperties" and issubclass(made, Properties)
    return made


def filled(cls: type[Properties], packet: int) -> Properties:
    """Every property the packet type takes, set the same way on ``cls``."""
    props = cls(packet)  # type: ignore[no-untyped-call]
    for name, value in VALUES.items():
        ident = props.getIdentFromName(name)  # type: ignore[no-untyped-call]
        if packet in props.properties[ident][1]:
            for one in value if isinstance(value, list) else [value]:
                setattr(props, name, one)
    return props


@pytest.mark.parametrize("packet", PACKETS, ids=str)
def test_the_lean_properties_pack_and_unpack_as_pahos_own(lean: type[Properties], packet: int) -> None:
    stock, ours = filled(Properties, packet), filled(lean, packet)
    assert ours.pack() == stock.pack() != b"\x00"  # type: ignore[no-untyped-call]
    assert ours.json() == stock.json() and str(ours) == str(stock)  # type: ignore[no-untyped-call]
    read_stock, read_ours = Properties(packet), lean(packet)  # type: ignore[no-untyped-call]
    packed = stock.pack()  # type: ignore[no-untyped-call]
    assert read_ours.unpack(packed)[1] == read_stock.unpack(packed)[1] == len(packed)  # type: ignore[no-untyped-call]
    assert read_ours.json() == read_stock.json() == stock.json()  # type: ignore[no-untyped-call]
    assert not read_ours.isEmpty()  # type: ignore[no-untyped-call]
    read_ours.clear()  # type: ignore[no-untyped-call]
    read_stock.clear()  # type: ignore[no-untyped-call]
    assert read_ours.isEmpty() and read_stock.isEmpty()  # type: ignore[no-untyped-call]
    assert read_ours.pack() == read_stock.pack() == b"\x00"  # type: ignore[no-untyped-call]
    assert read_ours.packetType == packet and not hasattr(read_ours, "ContentType")


def test_the_lean_properties_refuse_what_paho_refuses(lean: type[Properties]) -> None:
    for cls in (Properties, lean):
        props = cls(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
        with pytest.raises(MQTTException, match="does not apply"):
            props.ContentType = "application/json"
        with pytest.raises(MQTTException, match="must be one of"):
            props.NoSuchProperty = 1
        with pytest.raises(MQTTException, match="range"):
            cls(PacketTypes.CONNECT).ReceiveMaximum = 0  # type: ignore[no-untyped-call]


def test_lean_properties_share_their_tables_not_their_values(lean: type[Properties]) -> None:
    one, two = lean(PacketTypes.PUBLISH), lean(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    one.ContentType = "application/json"
    one.UserProperty = ("a", "1")
    assert one.names is two.names and one.properties is two.properties
    assert not hasattr(two, "ContentType") and two.isEmpty()  # type: ignore[no-untyped-call]
    two.UserProperty = ("b", "2")
    assert one.UserProperty == [("a", "1")] and two.UserProperty == [("b", "2")]
    assert Properties(PacketTypes.PUBLISH).names == one.names  # paho's own tables are as they were
    assert lean_properties() and paho.mqtt._packet.Properties is lean  # type: ignore[attr-defined]


def test_properties_cross_a_real_broker_intact(lean: type[Properties], broker: Broker) -> None:
    """A publish with properties, received by a paho client that makes them the lean way."""
    got: list[mqtt.MQTTMessage] = []
    arrived = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lean-sub", protocol=mqtt.MQTTv5)
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("karekod/lean/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, codes, p: ready.set()  # the SUBACK: the broker routes to it now
    sub.on_message = lambda c, u, m: (got.append(m), arrived.set())
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lean-pub", protocol=mqtt.MQTTv5)
    acked: list[Any] = []
    pub.on_publish = lambda c, u, mid, rc, props: acked.append(props)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        assert ready.wait(10)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = "application/json"
        props.MessageExpiryInterval = 600
        props.CorrelationData = b"\x01\x02"
        props.UserProperty = [("station", "dock-1"), ("şube", "İzmir")]
        pub.publish("karekod/lean/x", b"{}", qos=1, properties=props).wait_for_publish(10)
        assert arrived.wait(10)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    received = got[0].properties
    assert type(received) is lean
    assert received.ContentType == "application/json"
    assert received.CorrelationData == b"\x01\x02"
    assert received.UserProperty == [("station", "dock-1"), ("şube", "İzmir")]
    assert 0 < received.MessageExpiryInterval <= 600
    assert acked and all(type(p) is lean for p in acked)  # the PUBACK's, made by paho's client module
