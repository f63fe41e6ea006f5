"""Fleet migration: discovery, plans, waves."""
