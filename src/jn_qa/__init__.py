"""jn-qa: cited passage retrieval for questions about Japan-NATO relations."""

__version__ = "0.1.0"
