"""What people read after a run: the campaign report (HTML) and the console summary."""
