"""The dispatcher's handlers: one short function per message (and the events API's manual retry and recover)."""
