"""Scoring: accuracy, SBERT similarity, WUPS, the blind baseline, intervals and paired tests, and prediction over a data set."""
