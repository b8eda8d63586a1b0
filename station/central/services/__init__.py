"""The national services: ``uts`` and ``its`` each own their paths, request bodies and answers;
``http`` is what their clients share; ``sandbox`` stands in for both on one machine."""
