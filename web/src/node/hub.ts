/** `@huggingface/hub` in the browser build: the page reads a hub model by its `resolve/main/` URL instead. */
export function downloadFileToCacheDir(): never {
  throw new Error('hub ids are not resolved in the browser; give the model as a URL such as https://huggingface.co/OWNER/NAME/resolve/main/');
}
