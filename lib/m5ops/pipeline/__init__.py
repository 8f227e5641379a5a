"""What the task notebooks call: arrival, training, scoring, tasks, figures, model lifecycle."""
