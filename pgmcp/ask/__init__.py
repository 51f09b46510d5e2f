"""Plain-language questions: the prompt, the NL->SQL pipeline, the answer and the result check."""
