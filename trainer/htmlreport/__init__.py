"""The run's HTML report: plots (:mod:`.plots`) laid out in one self-contained page
(:mod:`.render`): images inline as data URIs, no script, no network."""
