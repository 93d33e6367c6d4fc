"""What a recipe is and where it comes from: versions, meta, the fleet, the mirror."""
