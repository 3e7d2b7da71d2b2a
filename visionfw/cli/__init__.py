"""Command-line front ends; ``train.py``, ``test.py`` and ``python -m visionfw`` call these."""
