"""The central submitter: station events in, ÜTS and İTS notifications out, each unit exactly once."""
