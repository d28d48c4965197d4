"""One extractor per document format (HTML, PDF, Word), each yielding the same record: `common.Extraction`."""
