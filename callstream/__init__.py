"""callstream: outbound voice calls through Kafka.

Call intents published to Kafka are validated against Avro contracts and dispatched to the
voice platform (Webex Connect "Make Call"); the platform's callbacks are stored in Kafka and
normalized into one canonical events topic.
"""

__version__ = "0.1.0"
