"""The ``otel-commerce`` commands, one small module per group; ``otel_commerce.cli`` wires them up."""
