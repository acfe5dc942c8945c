"""`tidegate serve`: the web dashboard, its JSON API and the scheduler, in one process."""
