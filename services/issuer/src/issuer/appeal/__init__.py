"""Appeals (申诉): what a family member files when something goes wrong, and its status."""
