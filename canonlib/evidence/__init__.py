"""canon's evidence wing: everything between a suite of notebooks and a reviewer's verdict.

- :mod:`.run` executes a suite's notebooks with papermill into an evidence dir;
- :mod:`.records` is what a notebook records and how it is read back;
- :mod:`.manifest` writes the in-toto Statement over the dir;
- :mod:`.verify` re-checks a dir from cold;
- :mod:`.proofs` holds the proof experiments and their re-derivable claims;
- :mod:`.notebook` is the thin helper layer the notebooks call.
"""
