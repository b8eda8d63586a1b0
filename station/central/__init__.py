"""The central side: station events in over MQTT, ÜTS and İTS notifications out, each unit exactly
once, results back to the stations. Builds on ``station.gs1``, ``station.wire``,
``station.tomlcheck`` and ``station.runtime``; never imports ``station.edge``."""
