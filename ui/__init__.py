"""The Gradio front end."""
