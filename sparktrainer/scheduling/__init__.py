"""The trainer's side of scheduling: which waiting job it takes next, what it serves, who it is."""
