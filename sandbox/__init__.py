"""A local stand-in for the voice platform (Webex Connect), for development, tests and benchmarks."""
