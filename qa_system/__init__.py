"""qa_system: a retriever-reader question-answering system."""

__version__ = "0.1.0"
