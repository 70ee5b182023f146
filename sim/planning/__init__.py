"""Many runs: the cheapest fleet (plan), the highest sustainable rate (capacity), sweeps."""
