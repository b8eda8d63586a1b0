"""The station: the daemon on the Pi that reads scanners, judges every scan, records it, lights the
LEDs and sends the outbox over MQTT. Builds on ``station.gs1``, ``station.wire``, ``station.tomlcheck``
and ``station.runtime``; never imports ``station.central``."""
