"""Pure parts of the read side: the view of a payment, its figures, and the shapes the API answers with."""
