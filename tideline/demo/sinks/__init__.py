"""Local stand-ins for external services (an SMTP sink), for the demo and the tests."""
