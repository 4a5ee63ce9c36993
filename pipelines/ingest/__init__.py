"""Reading what clinics send: the inbox contract (shared spec §1, §8) and its readers."""
