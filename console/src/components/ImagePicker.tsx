/** Images picked with a file input or dropped on the zone around it; both work without a mouse-only path. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

export function ImagePicker({
  id,
  label,
  multiple,
  onFiles,
  children,
}: {
  id: string;
  label: string;
  multiple: boolean;
  onFiles: (files: File[]) => void;
  children?: ComponentChildren;
}) {
  const [over, setOver] = useState(false);
  const take = (list: FileList | null | undefined) => {
    const files = Array.from(list ?? []);
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  };
  return (
    <div
      class={over ? 'drop drop-over' : 'drop'}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        take(e.dataTransfer?.files);
      }}
    >
      <label for={id}>{label}</label>
      <input
        id={id}
        type="file"
        accept="image/png,image/jpeg,image/webp,image/gif,image/tiff"
        multiple={multiple}
        onChange={(e) => {
          const input = e.target as HTMLInputElement;
          take(input.files);
          input.value = '';
        }}
      />
      <span class="muted">or drop {multiple ? 'images' : 'an image'} here</span>
      {children}
    </div>
  );
}
