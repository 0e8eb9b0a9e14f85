"""`make images`: the kind node image and the chart's images, built here and cached by content."""
