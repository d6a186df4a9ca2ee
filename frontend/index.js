export function render() { document.body.textContent = "Attention"; }
