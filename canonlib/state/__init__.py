"""What canon remembers: the registry, its guard, slot markers, the disk budget."""
