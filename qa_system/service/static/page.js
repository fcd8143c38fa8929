// Feedback buttons of the search page and the document page, and scrolling to the answer.
// Offsets are counted in Unicode code points (Array.from), as Python counts characters.
"use strict";
(function () {
  const status = document.getElementById("feedback-status");
  let lastSelection = null; // {element, start, end, text}: kept when a tap on a button clears it

  function say(message) {
    status.textContent = message;
  }

  function length(text) {
    return Array.from(text).length;
  }

  function offsetIn(element, node, offset) {
    const range = document.createRange();
    range.selectNodeContents(element);
    range.setEnd(node, offset);
    return length(range.toString());
  }

  function selectionIn(element) {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return null;
    const range = selection.getRangeAt(0);
    if (!element.contains(range.startContainer) || !element.contains(range.endContainer)) return null;
    let start = offsetIn(element, range.startContainer, range.startOffset);
    let end = offsetIn(element, range.endContainer, range.endOffset);
    const text = range.toString();
    const lead = length(text) - length(text.trimStart());
    const trail = length(text) - length(text.trimEnd());
    start += lead;
    end -= trail;
    if (end <= start) return null;
    return { element: element, start: start, end: end, text: text.trim() };
  }

  document.addEventListener("selectionchange", function () {
    const selection = window.getSelection();
    if (!selection || selection.rangeCount === 0 || selection.isCollapsed) return;
    const node = selection.getRangeAt(0).commonAncestorContainer;
    const element = (node.nodeType === 1 ? node : node.parentElement).closest(".passage-text");
    if (element) lastSelection = selectionIn(element);
  });

  async function send(body, button) {
    say("Sending…");
    try {
      const response = await fetch("/v1/feedback", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const reply = await response.json().catch(function () { return {}; });
      if (!response.ok) {
        say("Not saved: " + ((reply.error && reply.error.message) || response.statusText));
        return;
      }
      button.setAttribute("aria-pressed", "true");
      say("Thank you: your feedback is saved.");
    } catch (error) {
      say("Not saved: the service cannot be reached.");
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-feedback]");
    if (!button) return;
    const card = button.closest("[data-passage]");
    const passage = card.querySelector(".passage-text");
    const holder = button.closest("[data-question]");
    const base = Number(passage.dataset.start);
    const body = {
      question: holder ? holder.dataset.question : "",
      document_id: passage.dataset.documentId,
      kind: button.dataset.feedback,
    };
    if (!passage.classList.contains("document-text")) {
      body.passage_start = base;
      body.passage_end = base + length(passage.textContent);
    }
    if (body.kind === "here") {
      let selected = selectionIn(passage);
      if (!selected && lastSelection && lastSelection.element === passage) selected = lastSelection;
      if (!selected) {
        say("First select the words that answer the question in this passage, then press “The answer is here”.");
        return;
      }
      body.start = base + selected.start;
      body.end = base + selected.end;
      body.text = selected.text;
    } else {
      body.start = Number(button.dataset.start);
      body.end = Number(button.dataset.end);
    }
    send(body, button);
  });

  const answer = document.getElementById("answer");
  if (answer) {
    answer.scrollIntoView({ block: "center" });
    answer.focus({ preventScroll: true });
  }
})();
