"""infusion-outcomes: outcomes analytics for ketamine infusion clinics."""
