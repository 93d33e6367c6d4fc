"""The demo fleet, on the local backend and on a real Docker Swarm."""
