"""The QA family, in the form the seed paper used: a question about one numbered document of a real dataset
(SQuAD 2.0, QuALITY, TOEFL-QA) hidden among distractor documents of the same dataset, at an exact length.
Documents are read through `datasets` from a pinned source (`source.py`); gold answers are the dataset's."""
