"""What evalsuite asks of the Hugging Face Hub (through huggingface_hub, never by hand): a repo's commit and
files at a revision, one file, a pull request; and what a failed request means, as one line naming the fix."""
