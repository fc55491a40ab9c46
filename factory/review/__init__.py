"""``factory review``: a local web app where people keep, drop or edit a sample of a dataset's rows.

``session`` picks the rows (the build's review queue, or a sample made here); ``server`` serves the
page and writes each verdict to ``reviews.jsonl`` as it is given (``filters.review_store``).
"""
