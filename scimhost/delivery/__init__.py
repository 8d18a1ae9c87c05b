"""Delivery of the event log to sinks: the sink interface, the envelope, the retry schedule
and the dispatcher."""
