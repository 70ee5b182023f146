"""Records and step logs turned into figures: summary, metrics, cost and the printed report."""
