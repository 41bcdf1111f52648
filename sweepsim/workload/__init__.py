"""Request traces: loading, the Azure import, synthetic generation and its cache."""
