"""Quality-control filters (perplexity, embedding dedup, reward cut, drift). See the QC issue."""
