"""Load shapes, as pure schedules: the users ladder (the Locust shape that drives it is in
:mod:`llm_locust.locust.shape`)."""
